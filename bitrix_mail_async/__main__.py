"""``python -m bitrix_mail_async``: the ``bitrix-mail`` command line."""

import sys

from bitrix_mail_async.cli import main

if __name__ == "__main__":
    sys.exit(main())
