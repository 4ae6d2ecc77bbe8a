"""TEST AND DEMO ONLY: every switch that weakens a protection lives here.

Seeded randomness and the software authenticator whose private key sits in a clear PEM
file would break the system's guarantees in production, so neither is in a production
module. Production modules never import this package, and ``oms serve`` refuses to run
when it is loaded (``mpcnode.core.production_fence``).
"""
