"""The AWS (EKS batch) stack as planned: components/aws/."""
