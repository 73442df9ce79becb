"""ArtGAN Studio: `python app.py [--port 7860] [--host 127.0.0.1] [--workspace DIR] [--share]`."""

from __future__ import annotations

import argparse

from studio.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description="ArtGAN Studio: make art with GANs from small datasets.")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve on your network")
    parser.add_argument("--workspace", help="folder for datasets/, runs/, exports/ (default: $STUDIO_WORKSPACE or ./workspace)")
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link")
    args = parser.parse_args()

    from studio.ui.app import build_app, launch  # gradio import is slow; keep --help instant

    ws = Workspace.resolve(args.workspace)
    launch(build_app(ws), ws, host=args.host, port=args.port, share=args.share)


if __name__ == "__main__":
    main()
