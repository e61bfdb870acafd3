"""Socket.IO edge (python-socketio): authentication, subscriptions, replay and broadcasts."""
