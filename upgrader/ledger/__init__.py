"""The ledger: upgrader's durable record (SQLite by default, PostgreSQL for teams).

``db`` opens it and keeps its schema at head, ``uow`` wraps each use case in one transaction,
``repository`` reads and writes frozen ``records``, ``locks`` implements cluster leases.
"""
