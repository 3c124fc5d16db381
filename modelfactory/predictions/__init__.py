"""The prediction log: the table serving writes and monitoring reads (``store``), the serving
worker's side that keeps logging off the request path (``writer``), the writer process that
stores the rows (``drain``), and the spool on the pod's volume that holds them while the store
cannot (``spool``)."""
