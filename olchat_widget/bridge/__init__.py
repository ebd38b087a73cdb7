"""Open Lines: WhatsApp conversations carried into Bitrix24's contact center and back.

inbound.py   WAHA webhooks → stored, de-duplicated → imconnector.send.messages (a job)
views.py     the webhook addresses
ids.py       the ids both directions share (the client's Open Lines user and chat)
"""
