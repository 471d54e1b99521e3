"""sdfleet's per-user WebUI image: the programs the image copies in.

- ``supervisor``  the WebUI container's entrypoint: runs the image's framework on
                  loopback, restarts it, drives the Agones lifecycle (Ready / Health /
                  Shutdown), serves read-only /info and /logs on a loopback port.
- ``trusted``     the trusted sidecar's entrypoint: ``front`` (the only listener on the
                  game server port; only the allocated person passes; reports activity)
                  and ``usersync`` (copies the allocated person's folder into scratch
                  space and their new outputs back).
- ``fetch``       the model fetcher (library + CLI) used by the model sync Job and by the
                  optional "baked models" image build.
- ``probe``       read-only startup / readiness / liveness probes.

Every module reads its settings from the environment through ``settings`` so the README's
table of variables is the whole interface.
"""
