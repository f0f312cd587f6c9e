"""Live subscriptions over SSE and WebSocket (``streams``: the routes and their limits;
``transports``: a subscription written on a connection; events made ready once per process in
``shared``, handed to idle connections and written once per loop turn in ``push``, the open
connections swept in ``connections``), and the chat room: its socket (``chat``) and its page
(``chat_page``, with its own stylesheet and script in ``chat_assets``)."""
