# Written by hand: a SQL function is not something the ORM can declare.

from django.db import migrations

MARK = "growth-data-service: Supabase-compatible auth.uid() shim"

# Supabase ships auth.uid(); elsewhere we create a compatible one that reads the subject the
# request scope sets (request.jwt.claim.sub, or "sub" of request.jwt.claims). It is SECURITY
# INVOKER and STABLE; policies call it as (SELECT auth.uid()) so it runs once per statement.
# Grants are only issued when this migration created the function: on Supabase the schema
# belongs to supabase_auth_admin and already grants what the roles need.
CREATE = f"""
DO $$
BEGIN
    IF to_regprocedure('auth.uid()') IS NULL THEN
        CREATE SCHEMA IF NOT EXISTS auth;
        CREATE FUNCTION auth.uid() RETURNS uuid
            LANGUAGE sql STABLE SECURITY INVOKER
            AS $fn$
                SELECT nullif(
                    coalesce(
                        nullif(current_setting('request.jwt.claim.sub', true), ''),
                        nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
                    ),
                    ''
                )::uuid
            $fn$;
        COMMENT ON FUNCTION auth.uid() IS '{MARK}';
        GRANT USAGE ON SCHEMA auth TO authenticated, back_office, service_role;
        GRANT EXECUTE ON FUNCTION auth.uid() TO authenticated, back_office, service_role;
    END IF;
END
$$;
"""

# Only remove what this migration made: never Supabase's own function.
DROP = f"""
DO $$
BEGIN
    IF obj_description(to_regprocedure('auth.uid()'), 'pg_proc') = '{MARK}' THEN
        DROP FUNCTION auth.uid();
        IF NOT EXISTS (
            SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'auth'
            UNION ALL
            SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'auth'
        ) THEN
            DROP SCHEMA IF EXISTS auth;
        END IF;
    END IF;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("tenancy", "0002_scope_role_grants")]

    operations = [migrations.RunSQL(sql=CREATE, reverse_sql=DROP)]
