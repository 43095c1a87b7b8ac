#!/usr/bin/env python3
"""A generated file:// upstream of tiny wheels, for memory figures of a first
build (docs/BENCHMARKS.md): run it in an empty directory, then
`/usr/bin/time -f "%e s %M KiB" airlock -q build -c mirror.toml`.
PROJECTS and PER (environment) set the size; default 10,000 x 10. README=1
gives every wheel a summary, keywords, three dependencies on other generated
projects and a 4 KB markdown description (the project pages' real work)."""
import zipfile, hashlib, json, os, io
root=os.getcwd()
os.makedirs("upstream/files",exist_ok=True)
reqs=[]
PROJECTS=int(os.environ.get('PROJECTS','10000')); PER=int(os.environ.get('PER','10'))
README=os.environ.get('README')=='1'
BODY=("## Usage\n\nInstall it with `pip install NAME`, then:\n\n```python\nimport NAME\nNAME.run(debug=True)\n```\n\n"
      "| option | default | meaning |\n|---|---|---|\n| debug | false | print *everything* |\n\n"
      "See [the documentation](https://example.org/docs) and ![badge](https://img.example.org/b.svg).\n\n")*8
for p in range(PROJECTS):
    name=f"project-{p:05}"; dist=f"project_{p:05}"
    entries=[]
    for v in range(PER):
        fn=f"{dist}-1.{v}-py3-none-any.whl"
        buf=io.BytesIO()
        with zipfile.ZipFile(buf,"w") as z:
            meta=f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.{v}\n"
            if README:
                deps="".join(f"Requires-Dist: project-{(p*7+k*13+1)%PROJECTS:05}>=1.0\n" for k in range(3))
                meta+=f"Summary: Generated project {p} for the page benchmarks\nKeywords: bench,generated,p{p%97}\n{deps}Description-Content-Type: text/markdown\n\n# {name}\n\n"+BODY.replace("NAME",dist)
            z.writestr(f"{dist}-1.{v}.dist-info/METADATA",meta)
            z.writestr(f"{dist}-1.{v}.dist-info/WHEEL","Wheel-Version: 1.0\nTag: py3-none-any\n")
            z.writestr(f"{dist}-1.{v}.dist-info/RECORD","")
        b=buf.getvalue()
        open(f"upstream/files/{fn}","wb").write(b)
        entries.append({"filename":fn,"url":f"../../files/{fn}","hashes":{"sha256":hashlib.sha256(b).hexdigest()},"size":len(b),"upload-time":f"2024-01-{v+1:02}T00:00:00Z"})
    d=f"upstream/simple/{name}"; os.makedirs(d,exist_ok=True)
    json.dump({"meta":{"api-version":"1.1"},"name":name,"files":entries},open(f"{d}/index.v1_json","w"))
    reqs.append(name)
open("requirements.txt","w").write("\n".join(reqs)+"\n")
open("mirror.toml","w").write(f'[mirror]\nupstream = "file://{root}/upstream/simple/"\n[select]\nrequirements = ["requirements.txt"]\n')
