"""pydantic contracts for everything nasmr reads and writes."""
