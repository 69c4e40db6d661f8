import sys

from ops.drill.drill import main

sys.exit(main())
