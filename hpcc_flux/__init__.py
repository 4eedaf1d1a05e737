"""Compatibility package: the module path ``hpcc_flux.allocation`` that Sandia's canary
(``canary_flux``) imports for ``canary flux run``. hpc-connect's Flux backends live in
``hpc_connect.builtin_backends``; this package holds only ``FluxAllocation``."""
