"""Exporters render the one estate state into many outputs; they never raise into the pipeline."""
