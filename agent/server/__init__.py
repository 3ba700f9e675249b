"""The agent daemon: its HTTP app, its security and its status page."""
