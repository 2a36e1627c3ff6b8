"""Every rule of the vouchers service, as plain functions and values with no I/O.

``programmes`` (opening rules, status machine), ``eligibility`` (automatic checks
and reviews), ``ranking`` (scores, tie-breaks, award modes), ``ledger`` (amounts
per funding source, reconciliation), ``codes`` (voucher codes).
"""
