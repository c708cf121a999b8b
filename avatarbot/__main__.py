from avatarbot.cli import main

raise SystemExit(main())
