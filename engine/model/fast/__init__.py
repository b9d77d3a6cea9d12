"""Speed paths that are not the paper: reduced-precision projections and the compiled fixed-shape step."""
