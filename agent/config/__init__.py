"""The estate file and the agent's web configuration: validated, with FILE:LINE errors."""
