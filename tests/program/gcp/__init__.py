"""The GCP platform as planned: components/gcp/."""
