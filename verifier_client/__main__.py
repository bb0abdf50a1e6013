import sys

from verifier_client.cli import main

sys.exit(main())
