"""The submit Lambda of sdfleet's EKS batch mode (see functions/submit/README.md).

API Gateway (REST, proxy integration, API key) -> `handler.handler` -> validate the job
(`job.py`) against the stack's limits (`settings.py`) -> publish one SNS message per job
(`message.py`) -> answer 202 with the job id and where its results will appear.
"""
