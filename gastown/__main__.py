import sys

from gastown._entry import main

sys.exit(main())
