"""Norce Connect: the published import contracts (:mod:`.contracts`), the header (:mod:`.header`), the items
and their checks (:mod:`.items`, :mod:`.item_validation`), the job model (:mod:`.jobs`) and the ledger that
keeps a retry from posting twice (:mod:`.ledger`). Import-free on purpose."""
