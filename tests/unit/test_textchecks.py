"""The assistant- and seller-talk and prompt-echo checks: an instruct model answering the request, speaking as the shop,
or carrying the request's own wording."""

from __future__ import annotations

import pytest

from stages.textchecks import is_assistant_talk, is_prompt_echo, is_seller_talk, wrong_voice


@pytest.mark.parametrize("text", [
    'Here\'s a 5-star review of the latest Amazon bestsellers: "One of my all time favorites."',
    "Here is an example of a 4-star review.\nThe product is great.",
    "Here\u2019s a sample of 5-star Amazon review:",
    "A 5-star review of a product from Amazon.",
    "This is a 3-star review of my favorite product",
    "I'd be happy to take a review of my Amazon product.",
    "Sure! The cable works.",
    "As an AI, I have no hands to hold this phone.",
    "Below is a sample product review for a charger.",
    "I am happy to give you a 5-star rating!",
    "Here is my four-star score of the case:",
])
def test_answers_and_samples_are_assistant_talk(text):
    assert is_assistant_talk(text)


@pytest.mark.parametrize("text", [
    "Great phone, works well.",
    "I gave it 5 stars because here the battery lasts two days.",
    "Surely the worst case I have owned.",  # 'sure' inside a word
    "Here is my honest opinion: it broke after a week.",  # 'here is' without review/sample
    "Would be happy to buy again.",
    "I'd give it 5 stars if I could.",  # a rating given, not a review offered to someone
    "",
    None,
])
def test_reviews_are_not(text):
    assert not is_assistant_talk(text)


@pytest.mark.parametrize("text", [
    "I'm happy to work with you.",
    "The price was generous, and the quality of our products is amazing.",
    "I'm glad the customer is happy with their purchase.",
    "Thank you for your purchase! The case ships tomorrow.",
    "Please contact us if the cable fails.",
    "I'm glad you liked the product!",
    "I am happy to tell you that I have been pleased with my purchase.",
    "This product is great and has been highly praised by our team.",
    # released by s46-default, and quoted back as the shop talking
    "I'd love to hear about the wonderful customer experience you've had with our amazing product.",
    "This product is great. The sound of our brand on TV in your home really helped.",
    "The original customer's answer is worth a 3-star rating.",
])
def test_the_shop_talking_is_seller_talk(text):
    assert is_seller_talk(text)
    assert not is_assistant_talk(text)  # a separate reason, counted apart


@pytest.mark.parametrize("text", [
    "Great phone, works well.",
    "Our kids love it and our dog ignores it.",  # a buyer's "our"
    "It works well with all our apple products.",  # a household's products
    "Our other brand of plug always malfunctioned.",
    "I purchased this one for our business.",
    "The customers who bought it first were lucky.",  # not "the customer's"
    "Customer service was quick to replace it.",
    "I was happy to find a case that fits.",  # happy, but not to help anyone
    "You will be glad you bought it.",  # a buyer to other buyers
    "I'd give it 5 stars if I could.",
    "The user manual is useless.",
    "",
    None,
])
def test_buyers_are_not_seller_talk(text):
    assert not is_seller_talk(text)


@pytest.mark.parametrize("text", [
    "The 5-star Amazon rating on the third photo confirms it.",  # s43-default's records
    "I got a 5-star product! This is something that they would love.",
    "The 4-star product was very good.",
    "I have a 5-star and the top rated Amazon customer review",
    "This Amazon product is great.",
    "I'd like to offer a 4.5 star rating for this Amazon product",
    "My favorite five-star device.",
])
def test_the_requests_wording_is_a_prompt_echo(text):
    assert is_prompt_echo(text)


@pytest.mark.parametrize("text", [
    "I gave it 5 stars because the battery lasts two days.",
    "I'd give it 5 stars if I could.",
    "I always read the 1-star reviews before buying anything.",  # the other buyers' reviews
    "The Amazon product page says it fits the 2019 model.",
    "Bought it on Amazon, great price.",
    "",
    None,
])
def test_buyers_rating_talk_is_not_a_prompt_echo(text):
    assert not is_prompt_echo(text)


def test_an_echo_in_an_answer_counts_as_assistant_talk_first():
    assert wrong_voice("Here's a 5-star review of the case: a 5-star product.") == "assistant_talk"
