"""vigil record: an H.264 clip and a snapshot per alert, and the event store they go into."""
