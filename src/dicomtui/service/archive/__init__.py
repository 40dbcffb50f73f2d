"""Archive: the index of stored studies, Query/Retrieve, destinations, cleanup, reindex
and the jobs that run them."""
