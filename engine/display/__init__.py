"""What views draw, computed without Qt: color and contour levels, contours, profiles along a line,
paths and their barriers, and Hessian spectra (log-safe densities, eigenvalue sticks, reports side by side).

The desktop app holds no numerics of its own; it asks these modules and only draws.
"""
