"""What runs on bot hosts: the wrapper, the spool, the deliverer and the SDK (standard library
plus sqlite; nothing here imports the agent's server side)."""
