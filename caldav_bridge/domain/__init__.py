"""The domain: models, migrations, the interaction service and its rules, the queries behind
every calendar, desk and agenda, the outbox rows each change writes. No Radicale, HTTP, email
sending or template import."""
