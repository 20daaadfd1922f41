#!/bin/sh
# The "interpreted app" of the tests: it declares itself ready before it
# listens, as many real apps do, so ember must also wait for the port.
# PORT lets a test run it on the host network without taking 8080.
touch /tmp/.lock
exec httpd -f -p "${PORT:-8080}" -h /www
