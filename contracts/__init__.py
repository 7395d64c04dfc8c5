"""The public contract of the ICC platform's Kafka events.

Everything a consumer of our events needs, and nothing of any service's internals:
the envelope (CloudEvents Kafka binding), the typed payloads, the topic catalogue with
each topic's key, money, and the dated Council of Europe member list.
"""
