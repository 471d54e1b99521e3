"""The batch stack on a local moto server, and stand-in WebUI APIs the queue agent drives."""
