"""Alert sinks: the ``vigil sinks`` service delivers recorded events (``vigil:alerts``) to integrators
over MQTT (Home Assistant discovery) and signed webhooks, at least once, per sink (docs/sinks.md).

    filters.py     which events a sink wants; its rate limit (pure)
    webhook.py     WebhookSink: signed POSTs; sign() and verify()
    mqtt.py        MqttSink: event, last-alert, snapshot and state topics; Home Assistant discovery
    targets.py     the Sink protocol; open_sink(config) builds one, reading secret files
    deadletter.py  DeadLetters: a sink's stream of events given up on; replay
    worker.py      SinkWorker: one sink's thread: consumer group → filter → deliver/retry → ack
    service.py     SinkService: a lease per sink, a worker per owned sink, lag metrics
    metrics.py     SinksMetrics
"""
