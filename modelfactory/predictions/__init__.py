"""The prediction log: the table serving writes and monitoring reads (``store``), and the writer
process that keeps logging off the request path (``writer``)."""
