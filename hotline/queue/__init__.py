"""Redis Streams: intake producer, router consumer, key names, embedded redis-server."""
