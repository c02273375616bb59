"""The API of a worker (and later the hub): REST, WebSocket live stream, metrics, exports.

`create_app(backend)` (api.app) builds the Starlette app over any `Backend` (api.backend);
`LocalBackend` serves one worker's store, spool and `LiveFeed` (api.live); `FeedSender` /
`FeedReceiver` (api.feedpipe) carry entries from the capture process to the API process.
"""
