"""A local SageMaker-Runtime-compatible endpoint serving real scikit-learn models."""
