"""The HTTP router: SageMaker-compatible invocations, decisions, logging, guardrails."""
