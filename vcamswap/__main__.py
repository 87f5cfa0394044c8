from vcamswap.cli import main

raise SystemExit(main())
