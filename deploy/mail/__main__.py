import argparse
import signal
import sys
from pathlib import Path

from deploy.mail import MAILDIR, PORT, Capture, controller, read


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.mail", description="the local mail capture server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="receive mail on 127.0.0.1 and keep each message as an .eml file")
    serve.add_argument("--port", type=int, default=PORT)
    serve.add_argument("--host", default="127.0.0.1", help="0.0.0.0 in a container")
    serve.add_argument("--directory", type=Path, default=MAILDIR)
    listing = commands.add_parser("list", help="print the mails received")
    listing.add_argument("--directory", type=Path, default=MAILDIR)
    args = parser.parse_args(argv)
    if args.command == "list":
        for message in read(args.directory):
            attached = [part.get_filename() for part in message.iter_attachments()]
            print(f"{message['Date'] or '-'}\t{message['To']}\t{message['Subject']}" + (f"\t[{', '.join(attached)}]" if attached else ""))
        return 0
    server = controller(Capture(args.directory), args.port, args.host)
    server.start()
    print(f"mail capture on {args.host}:{args.port}, messages in {args.directory}", flush=True)
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
