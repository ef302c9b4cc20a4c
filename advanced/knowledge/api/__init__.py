"""The knowledge API: serializers and viewsets (routed by advanced/api/urls.py)."""
