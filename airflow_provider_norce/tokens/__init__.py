"""Tokens: how long they live and where they are kept (:mod:`.cache`), which store is shared beyond one
process (:mod:`.store`), and the machine-wide store (:mod:`.machine_store`). Import-free on purpose."""
