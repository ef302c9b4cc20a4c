# Written by hand: grants are not something the ORM can declare.

from django.db import migrations

# back_office (admin staff) and service_role (commands, demo and test data) use Django's own
# tables too (sessions, admin log, users), so they get every table of the schema; the tenant
# tables still hold them to their named policies because row level security is forced there.
# Default privileges extend the grant to tables created by later migrations. `authenticated`
# (API requests) is granted table by table by the row level security migrations; `anon` gets
# nothing.
GRANT = """
GRANT USAGE ON SCHEMA public TO authenticated, back_office, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO back_office, service_role;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO back_office, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO back_office, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO back_office, service_role;
"""

REVOKE = """
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    REVOKE USAGE, SELECT ON SEQUENCES FROM back_office, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM back_office, service_role;
REVOKE USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public FROM back_office, service_role;
REVOKE SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public FROM back_office, service_role;
REVOKE USAGE ON SCHEMA public FROM authenticated, back_office, service_role;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("tenancy", "0001_initial"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("sessions", "0001_initial"),
    ]

    operations = [migrations.RunSQL(sql=GRANT, reverse_sql=REVOKE)]
