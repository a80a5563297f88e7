"""``python -m gastown.demo_agent [--think S] [--nudge-think S] [--record FILE] [--ask-trust]``"""

import sys

from gastown.demo_agent.agent import main

sys.exit(main())
