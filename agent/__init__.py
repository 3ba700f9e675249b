"""botwatch: runtime monitoring for bot estates (RPA bots and scheduled scripts).

The pipeline: sources -> events -> estate state (+ journal) -> exporters.
Keep this module free of imports: `botwatch run` imports it on its hot path.
"""

__version__ = "0.1.0"
