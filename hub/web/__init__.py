"""Coordination-point pages (Dutch, server-rendered with jinja2): the live bed overview and a provider view."""
