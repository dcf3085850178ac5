"""Asset groups in data-flow order: raw -> ingest -> warehouse -> models -> release."""
