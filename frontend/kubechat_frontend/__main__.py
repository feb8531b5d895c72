"""`python -m kubechat_frontend` runs the server, like `kubechat-frontend`."""

from kubechat_frontend.cli import serve

serve()
