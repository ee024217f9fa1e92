"""The smallest kredun workflow: `kredun run examples/hello.py main --name you`."""

from kredun import task

kredun_namespace = "examples.hello"


@task()
def greet(name: str) -> str:
    return f"Hello, {name}!"


@task()
def shout(text: str) -> str:
    return text.upper()


@task()
def main(name: str = "world") -> dict:
    greeting = greet(name)
    return {"greeting": greeting, "loud": shout(greeting)}
