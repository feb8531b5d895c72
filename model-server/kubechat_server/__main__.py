"""``python -m kubechat_server`` is ``kubechat-server``."""

from kubechat_server.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
