"""``/docs`` and ``/redoc`` work offline: their pages load scripts and styles from this server
(``server.routers.docs``), never from a CDN, and those assets are served."""

from __future__ import annotations

import re


def test_docs_pages_use_local_assets_only(server) -> None:
    with server.client() as client:
        for page in ("/docs", "/redoc"):
            response = client.get(page)
            assert response.status_code == 200 and "text/html" in response.headers["content-type"]
            sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
            assert sources and all(s.startswith("/docs-assets/") for s in sources), sources
            assert "cdn" not in response.text.lower() and "googleapis" not in response.text
            for source in sources:
                asset = client.get(source)
                assert asset.status_code == 200 and len(asset.content) > 1000, source
        assert client.get("/openapi.json").json()["info"]["title"]
