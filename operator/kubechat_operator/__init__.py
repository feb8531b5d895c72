"""kubechat's Kopf operator: reconciles ChatModel and ChatFrontend resources into running chat services."""

GROUP = "kubechat.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
