"""The Kubernetes objects both clouds render: components/k8s/."""
