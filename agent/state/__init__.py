"""Estate state: events enriched, aggregated per bot and journalled; the read model exporters use."""
